package mesh

import (
	"fmt"
	"os"
	"time"
)

func init() {
	if os.Getenv("MESH_DEBUG") != "" {
		debugf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("05.000 ")+f+"\n", a...) }
	}
}
