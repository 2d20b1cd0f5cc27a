package mesh

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// LoadOrCreateKey reads the private key at path, creating it (mode 0600,
// in a 0700 directory) on first start. A file that is not a WireGuard key
// (base64, as `wg genkey` writes it) or that others can read is refused.
// The key itself never appears in an error.
func LoadOrCreateKey(path string) (wgtypes.Key, bool, error) {
	k, err := ReadKey(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return wgtypes.Key{}, false, err
	}
	k, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return k, false, err
	}
	if err := WriteKey(path, k); err != nil {
		return wgtypes.Key{}, false, err
	}
	return k, true, nil
}

// ReadKey reads a private key file, refusing one others can read.
func ReadKey(path string) (wgtypes.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return wgtypes.Key{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return wgtypes.Key{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return wgtypes.Key{}, fmt.Errorf("private key file %s is accessible by others (mode %04o): chmod 600 it", path, st.Mode().Perm())
	}
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("private key file %s does not hold a WireGuard private key (base64 of 32 bytes, as `wg genkey` writes)", path)
	}
	return k, nil
}

// WriteKey replaces the key file atomically, mode 0600.
func WriteKey(path string, k wgtypes.Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
