// One service of the lab system, in Go: the same program, flags and fault file as service.py
// (see there for the contract), except that it keeps no data (no disk steps).
//
//	service --name NAME --listen ADDR:PORT --route PATH=STEP[,STEP...] ... --fault-file FILE
//	        [--keep-alive] [--timeout-ms MS] [--retries N]
//
// Built by lab.py at `up` (go build, the standard library only) into bin/<service>, so that the
// process's comm is its service's name.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const faultRefresh = 100 * time.Millisecond

type routeFlags []string

func (r *routeFlags) String() string     { return strings.Join(*r, " ") }
func (r *routeFlags) Set(v string) error { *r = append(*r, v); return nil }

// A step: a call to one of the callee's instances in turn.
type step struct {
	targets []string // host:port
	path    string
	turn    uint32
}

func parseStep(s string) (*step, error) {
	st := &step{}
	for i, u := range strings.Split(s, "|") {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" || p.Port() == "" {
			return nil, fmt.Errorf("--route: step %q is not http://HOST:PORT/PATH[|...] (the Go service keeps no data)", s)
		}
		path := p.Path
		if path == "" {
			path = "/"
		}
		if i > 0 && path != st.path {
			return nil, fmt.Errorf("--route: step %q: its instances differ in path", s)
		}
		st.path = path
		st.targets = append(st.targets, p.Host)
	}
	return st, nil
}

func parseRoutes(specs []string) (map[string][]*step, error) {
	routes := map[string][]*step{}
	for _, spec := range specs {
		path, steps, ok := strings.Cut(spec, "=")
		if !ok || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("--route %q: expected PATH=STEP[,STEP...]", spec)
		}
		routes[path] = []*step{}
		for _, s := range strings.Split(steps, ",") {
			if s == "" {
				continue
			}
			st, err := parseStep(s)
			if err != nil {
				return nil, err
			}
			routes[path] = append(routes[path], st)
		}
	}
	return routes, nil
}

// faultFile: the fault file's line, cached for faultRefresh.
type faultFile struct {
	path   string
	mu     sync.Mutex
	readAt time.Time
	kind   string
	value  float64
}

func (f *faultFile) get() (string, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.readAt) >= faultRefresh {
		f.readAt = now
		f.kind, f.value = f.parse()
	}
	return f.kind, f.value
}

func (f *faultFile) parse() (string, float64) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return "", 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	words := strings.Fields(line)
	if len(words) == 0 || (words[0] != "slow" && words[0] != "error" && words[0] != "leak") {
		return "", 0
	}
	if len(words) == 1 {
		if words[0] == "error" {
			return "error", 1
		}
		return words[0], 0
	}
	v, err := strconv.ParseFloat(words[1], 64)
	if err != nil {
		return "", 0
	}
	return words[0], v
}

// leak grows by the fault's rate in 100 ms steps, filled so that the pages are charged to the
// cgroup; it lets go of what it holds once the fault is cleared.
func leak(f *faultFile) {
	var hoard [][]byte
	for range time.Tick(100 * time.Millisecond) {
		kind, mbPerS := f.get()
		if kind == "leak" && mbPerS > 0 {
			b := make([]byte, int(mbPerS*(1<<20)/10))
			for i := range b {
				b[i] = 0x5a
			}
			hoard = append(hoard, b)
		} else if hoard != nil {
			hoard = nil
		}
	}
}

type caller struct {
	client  *http.Client
	retries int
}

// call: one GET, true on a 2xx answer. Go's transport itself replaces a pooled connection that
// the server had closed while it was idle (an idempotent request), which is no retry.
func (c *caller) call(target, path string) bool {
	resp, err := c.client.Get("http://" + target + path)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (c *caller) step(st *step) bool {
	for attempt := 0; attempt <= c.retries; attempt++ {
		i := atomic.AddUint32(&st.turn, 1) % uint32(len(st.targets))
		if c.call(st.targets[i], st.path) {
			return true
		}
	}
	return false
}

func main() {
	name := flag.String("name", "", "the service's name")
	listen := flag.String("listen", "", "ADDR:PORT")
	faultPath := flag.String("fault-file", "", "the fault file")
	keepAlive := flag.Bool("keep-alive", false, "pool and reuse downstream connections")
	timeoutMs := flag.Float64("timeout-ms", 2000, "a downstream call's timeout")
	retries := flag.Int("retries", 0, "tries again of a failed call, each on the callee's next instance")
	var routeSpecs routeFlags
	flag.Var(&routeSpecs, "route", "PATH=STEP[,STEP...]")
	flag.Parse()
	fail := func(msg string) {
		fmt.Fprintf(os.Stderr, "service: %s\n", msg)
		os.Exit(2)
	}
	if *name == "" || *listen == "" || *faultPath == "" {
		fail("--name, --listen and --fault-file are required")
	}
	if *timeoutMs <= 0 || *retries < 0 {
		fail("--timeout-ms must be > 0 and --retries >= 0")
	}
	routes, err := parseRoutes(routeSpecs)
	if err != nil {
		fail(err.Error())
	}
	fault := &faultFile{path: *faultPath}
	go leak(fault)
	c := &caller{retries: *retries, client: &http.Client{
		Timeout: time.Duration(*timeoutMs * float64(time.Millisecond)),
		Transport: &http.Transport{
			DisableKeepAlives:   !*keepAlive,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			DialContext:         (&net.Dialer{Timeout: time.Duration(*timeoutMs * float64(time.Millisecond))}).DialContext,
		},
	}}
	answer := func(w http.ResponseWriter, code int, detail string) {
		body, _ := json.Marshal(map[string]any{"service": *name, "status": code, "detail": detail})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
		w.WriteHeader(code)
		w.Write(append(body, '\n'))
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		steps, ok := routes[r.URL.Path]
		if r.Method != http.MethodGet || !ok {
			answer(w, 404, "no route")
			return
		}
		kind, value := fault.get()
		if kind == "slow" && value > 0 {
			time.Sleep(time.Duration(value * float64(time.Millisecond)))
		}
		if kind == "error" && rand.Float64() < value {
			answer(w, 500, "injected error")
			return
		}
		for _, st := range steps {
			if !c.step(st) {
				answer(w, 502, "downstream failed: "+strings.Join(st.targets, "|")+st.path)
				return
			}
		}
		answer(w, 200, "ok")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(fmt.Sprintf("%s: %v", *listen, err))
	}
	fmt.Println("ready")
	// Idle client connections are closed after a minute; a pooled client reconnects.
	srv := &http.Server{Handler: handler, IdleTimeout: 60 * time.Second, ReadHeaderTimeout: 10 * time.Second}
	fail(srv.Serve(ln).Error())
}
