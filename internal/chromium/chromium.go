// Package chromium drives headless Chromium (Debian package chromium) for
// tests of pages: the rendered DOM after scripts ran, screenshots, and a
// DevTools session to read a live page while it changes.
package chromium

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"
)

// Path finds the browser, or says how to install it.
func Path() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium is not installed (apt-get install -y chromium)")
}

// flags make Chromium run headless as root, offline and quiet: no sandbox
// (root), no GPU, and none of the background fetches a fresh profile makes.
func flags(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--window-size=1280,900"}
}

// DumpDOM loads url, lets its scripts run for budget of virtual time, and
// returns the DOM as it then is.
func DumpDOM(bin, profile, url string, budget time.Duration) (string, error) {
	args := append(flags(profile), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--dump-dom", url)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "", fmt.Errorf("chromium --dump-dom %s: %w", url, err)
	}
	return string(out), nil
}

// Screenshot loads url and writes a PNG of the window to png.
func Screenshot(bin, profile, url, png string, budget time.Duration) error {
	args := append(flags(profile), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--screenshot="+png, url)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("chromium --screenshot %s: %w\n%s", url, err, out)
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		return fmt.Errorf("chromium wrote no screenshot to %s", png)
	}
	return nil
}

// Session is a running browser with one page open, driven over the
// DevTools protocol.
type Session struct {
	cmd  *exec.Cmd
	ws   *websocket.Conn
	next atomic.Int64
}

// Open starts the browser on url and attaches to its page.
func Open(bin, profile, url string) (*Session, error) {
	args := append(flags(profile), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1", url)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Session{cmd: cmd}
	// Chromium prints where its DevTools endpoint listens.
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, ws, ok := strings.Cut(sc.Text(), "DevTools listening on "); ok {
				select {
				case found <- strings.TrimSpace(ws):
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var browserWS string
	select {
	case browserWS = <-found:
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("chromium did not open its DevTools endpoint within 30s")
	}
	host := strings.TrimPrefix(browserWS, "ws://")
	host, _, _ = strings.Cut(host, "/")
	var pageWS string
	deadline := time.Now().Add(10 * time.Second)
	for pageWS == "" {
		var targets []struct {
			Type, URL            string
			WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
		}
		if resp, err := http.Get("http://" + host + "/json/list"); err == nil {
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		for _, t := range targets {
			if t.Type == "page" && t.WebSocketDebuggerURL != "" {
				pageWS = t.WebSocketDebuggerURL
			}
		}
		if pageWS == "" {
			if time.Now().After(deadline) {
				s.Close()
				return nil, errors.New("chromium opened no page to attach to")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if s.ws, err = websocket.Dial(pageWS, "", "http://127.0.0.1"); err != nil {
		s.Close()
		return nil, fmt.Errorf("attaching to the page: %w", err)
	}
	return s, nil
}

// call sends one DevTools command and returns its result, skipping the
// events that arrive in between.
func (s *Session) call(method string, params any, result any) error {
	id := s.next.Add(1)
	if err := websocket.JSON.Send(s.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	s.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var msg struct {
			ID     int64           `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(s.ws, &msg); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if msg.ID != id {
			continue
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(msg.Result, result)
	}
}

// Eval evaluates a JavaScript expression in the page and returns its value
// as a string ("" for null or undefined).
func (s *Session) Eval(expr string) (string, error) {
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := s.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return "", err
	}
	if r.Exception != nil {
		return "", fmt.Errorf("%s: %s", expr, r.Exception.Text)
	}
	if r.Result.Value == nil {
		return "", nil
	}
	return fmt.Sprint(r.Result.Value), nil
}

// Close ends the browser.
func (s *Session) Close() {
	if s.ws != nil {
		s.ws.Close()
	}
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}
