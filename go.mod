module github.com/goldsmith-dev/goldsmith

go 1.26.8
