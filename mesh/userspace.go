package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// userspace is the embedded wireguard-go device.
type userspace struct {
	name string
	dev  *device.Device
	uapi net.Listener // nil when the device has no socket (tests)
}

func openUserspace(cfg Config) (wg, link, error) {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = device.DefaultMTU
	}
	t, err := tun.CreateTUN(cfg.Interface, mtu)
	if err != nil {
		return nil, nil, fmt.Errorf("mesh: creating TUN device %s (needs root or CAP_NET_ADMIN and /dev/net/tun): %w", cfg.Interface, err)
	}
	name, err := t.Name()
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	u, err := newUserspace(t, name, cfg.Logger, true)
	if err != nil {
		return nil, nil, err
	}
	return u, nlLink{name: name}, nil
}

// newUserspace runs a device on t; with uapi, it also serves the UAPI
// socket in /var/run/wireguard so `wg` can read and set it.
func newUserspace(t tun.Device, name string, log *slog.Logger, uapi bool) (*userspace, error) {
	logger := &device.Logger{
		Verbosef: debugf,
		Errorf: func(format string, args ...any) {
			log.Warn("wireguard: "+fmt.Sprintf(format, args...), "interface", name)
		},
	}
	u := &userspace{name: name, dev: device.NewDevice(t, conn.NewDefaultBind(), logger)}
	if uapi {
		f, err := ipc.UAPIOpen(name)
		if err != nil {
			u.dev.Close()
			return nil, fmt.Errorf("mesh: UAPI socket of %s: %w", name, err)
		}
		l, err := ipc.UAPIListen(name, f)
		if err != nil {
			f.Close()
			u.dev.Close()
			return nil, fmt.Errorf("mesh: UAPI socket of %s: %w", name, err)
		}
		u.uapi = l
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go u.dev.IpcHandle(c)
			}
		}()
	}
	if err := u.dev.Up(); err != nil {
		u.close()
		return nil, fmt.Errorf("mesh: bringing the device %s up: %w", name, err)
	}
	return u, nil
}

func (u *userspace) configure(c wgtypes.Config) error {
	return u.dev.IpcSet(uapiSet(c))
}

func (u *userspace) state() (*wgtypes.Device, error) {
	s, err := u.dev.IpcGet()
	if err != nil {
		return nil, err
	}
	return uapiGet(u.name, s)
}

func (u *userspace) close() error {
	var err error
	if u.uapi != nil {
		err = u.uapi.Close()
		// The socket file outlives its listener: remove it, so `wg show`
		// does not list a device that is gone.
		os.Remove(filepath.Join("/var/run/wireguard", u.name+".sock"))
	}
	u.dev.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

var debugf = device.DiscardLogf
