package popctl

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// StartTimeout bounds how long Start waits for a POP to serve.
const StartTimeout = 30 * time.Second

// Start writes the Caddyfile, runs the process and waits until its
// listener accepts connections and its admin API answers.
func (p *POP) Start() error {
	if err := p.Launch(); err != nil {
		return err
	}
	return p.WaitReady(StartTimeout)
}

// Launch writes the Caddyfile and runs the process without waiting for it
// to serve: for a start that is meant to fail, or several started at the
// same instant.
func (p *POP) Launch() error {
	p.mu.Lock()
	running := p.cmd != nil && !closed(p.exited)
	p.mu.Unlock()
	if running {
		return fmt.Errorf("%s is already running", p.Opts.Name)
	}
	cfg := p.ConfigPath()
	if err := os.WriteFile(cfg, []byte(p.Caddyfile()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(p.Opts.Bin, "run", "--config", cfg, "--adapter", "caddyfile")
	d := p.Opts.Dir
	cmd.Env = append(os.Environ(), "HOME="+d, "XDG_DATA_HOME="+d, "XDG_CONFIG_HOME="+d, "EDGE_CLUSTER_KEY="+p.Opts.Key)
	cmd.Env = append(cmd.Env, p.Opts.Env...)
	w := writerFunc(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.log.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	if p.Opts.DieWithParent {
		DieWithParent(cmd)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// WaitReady waits until the POP's listener accepts connections and its
// admin API answers. Each attempt is a connection to the POP's port, which
// the POP routes (or refuses) and counts like any other.
func (p *POP) WaitReady(within time.Duration) error {
	exited := p.exitedChan()
	if exited == nil {
		return fmt.Errorf("%s was not started", p.Opts.Name)
	}
	admin := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		if c, err := net.DialTimeout("tcp", p.Listen, time.Second); err == nil {
			c.Close()
			if resp, err := admin.Get("http://" + p.Admin + "/config/"); err == nil {
				resp.Body.Close()
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start:\n%s", p.Opts.Name, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start listening on %s within %v:\n%s", p.Opts.Name, p.Listen, within, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reload loads the POP's (changed) Options through the admin API, as
// `caddy reload` does. The key travels inline, since a reload cannot change
// the process environment.
func (p *POP) Reload() error {
	cf := p.Caddyfile()
	if p.Opts.Key != "" {
		cf = strings.Replace(cf, "key "+keyPlaceholder, "key "+p.Opts.Key, 1)
	}
	code, body, err := p.AdminDo(http.MethodPost, "/load", "text/caddyfile", cf)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("reload: %d: %s", code, body)
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *POP) exitedChan() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Cmd is the process last started (nil before Launch). Its ProcessState is
// set once the process has exited.
func (p *POP) Cmd() *exec.Cmd {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd
}

// PID is the process id of the POP last started (0 before Launch).
func (p *POP) PID() int {
	if c := p.Cmd(); c != nil && c.Process != nil {
		return c.Process.Pid
	}
	return 0
}

// Exited reports whether the process last started has exited.
func (p *POP) Exited() bool {
	c := p.exitedChan()
	return c != nil && closed(c)
}

// Signal sends sig to the running process.
func (p *POP) Signal(sig os.Signal) error {
	c := p.Cmd()
	if c == nil || c.Process == nil {
		return fmt.Errorf("%s was not started", p.Opts.Name)
	}
	return c.Process.Signal(sig)
}

// Terminate sends SIGTERM, as `kill` or a service manager stopping the POP.
func (p *POP) Terminate() error { return p.Signal(syscall.SIGTERM) }

// Wait waits up to within for the process to exit.
func (p *POP) Wait(within time.Duration) error {
	c := p.exitedChan()
	if c == nil {
		return nil
	}
	select {
	case <-c:
		return nil
	case <-time.After(within):
		return fmt.Errorf("%s still running after %v", p.Opts.Name, within)
	}
}

// Kill stops the process with SIGKILL, as a crash would (kill -9), and
// waits until it is gone.
func (p *POP) Kill() {
	if p.Signal(syscall.SIGKILL) == nil {
		p.Wait(10 * time.Second)
	}
}

// Logs returns what the process printed.
func (p *POP) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}
