package mesh

import "os/exec"

var execLookPath = exec.LookPath
