//go:build !linux

// Command cluster-demo needs Linux network namespaces; elsewhere it says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "run-cluster: the edge runs in Linux network namespaces, which this system does not have; `make run` starts a single POP on loopback instead")
	os.Exit(1)
}
