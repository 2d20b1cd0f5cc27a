//go:build !linux

package popctl

const parentEnv = "POPCTL_TEST_PARENT"

func runParent() int { return 1 }
