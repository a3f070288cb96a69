package blob

import "time"

// SetTmpAge lets a test clean tmp/ of uploads younger than CleanTmp's
// default age.
func SetTmpAge(s *S3, d time.Duration) { s.tmpAge = d }
