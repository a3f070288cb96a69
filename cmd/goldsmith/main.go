// Command goldsmith is a self-hosted image factory that speaks Azure VM Image Builder.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "goldsmith: under construction")
	os.Exit(2)
}
