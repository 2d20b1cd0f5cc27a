package mesh

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
)

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// CheckPrivileges says whether this process may create and configure
// network links: it needs CAP_NET_ADMIN (root has it).
func CheckPrivileges() error {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil // cannot tell: let the device creation say
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil
			}
			if caps&(1<<capNetAdmin) == 0 {
				return errors.New("the WireGuard device needs CAP_NET_ADMIN: run as root or grant it (setcap cap_net_admin+ep, or AmbientCapabilities=CAP_NET_ADMIN in the systemd unit)")
			}
			return nil
		}
	}
	return nil
}
