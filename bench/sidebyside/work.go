package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The reference work, once per side. goldsmith.json is an ARM deployment
// template (goldsmith build --parameters); packer.json is a Packer 1.6.6
// JSON template (packer build -var-file). Both run setup.sh, upload
// payload.bin, run an inline sudo step, reboot with `sudo shutdown -r now`,
// check after the reboot, deprovision, and end as a fixed VHD.
var (
	//go:embed work/goldsmith.json
	goldsmithTemplate []byte
	//go:embed work/packer.json
	packerTemplate []byte
	//go:embed work/setup.sh
	setupScript []byte
	//go:embed work/deprovision.sh
	deprovisionScript []byte
)

// payloadSize is the File customizer's payload: enough to be a real upload,
// small next to a build.
const payloadSize = 1 << 20

// payload is the File customizer's content: pseudo-random bytes from a fixed
// seed, so its sha256 is the same in every run.
func payload() []byte {
	r := rand.New(rand.NewChaCha8([32]byte{'g', 'o', 'l', 'd', 's', 'm', 'i', 't', 'h'}))
	b := make([]byte, payloadSize)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pairWork is what one pair serves and both sides build: setup.sh with the
// pair's nonce, and the payload.
type pairWork struct {
	Nonce         string
	ServeDir      string // served at BaseURI
	BaseURI       string
	SetupPath     string
	SetupSHA256   string
	PayloadPath   string
	PayloadSHA256 string
}

// newPairWork writes the pair's files under serveRoot/pair-N, which the
// bench's HTTP server serves at baseURL/pair-N.
func newPairWork(serveRoot, baseURL string, pair int, pay []byte) (pairWork, error) {
	name := fmt.Sprintf("pair-%d", pair)
	w := pairWork{
		// Time and pair number: unique across runs sharing a data dir, so
		// the warm build's first customizer is never a cache hit.
		Nonce:         fmt.Sprintf("%s-%d", time.Now().UTC().Format("20060102T150405.000000000"), pair),
		ServeDir:      filepath.Join(serveRoot, name),
		BaseURI:       baseURL + "/" + name,
		PayloadSHA256: sha256Hex(pay),
	}
	if err := os.MkdirAll(w.ServeDir, 0o755); err != nil {
		return w, fmt.Errorf("pair %d work: %w", pair, err)
	}
	setup := bytes.ReplaceAll(setupScript, []byte("@NONCE@"), []byte(w.Nonce))
	w.SetupSHA256 = sha256Hex(setup)
	w.SetupPath = filepath.Join(w.ServeDir, "setup.sh")
	w.PayloadPath = filepath.Join(w.ServeDir, "payload.bin")
	if err := os.WriteFile(w.SetupPath, setup, 0o755); err != nil {
		return w, fmt.Errorf("pair %d work: %w", pair, err)
	}
	if err := os.WriteFile(w.PayloadPath, pay, 0o644); err != nil {
		return w, fmt.Errorf("pair %d work: %w", pair, err)
	}
	return w, nil
}

// goldsmithParameters is the ARM parameter file for goldsmith.json.
func goldsmithParameters(w pairWork, checkText, vmSize, imageVersion string) ([]byte, error) {
	values := map[string]string{
		"baseUri":       w.BaseURI,
		"setupSha256":   w.SetupSHA256,
		"payloadSha256": w.PayloadSHA256,
		"checkText":     checkText,
		"vmSize":        vmSize,
		"imageVersion":  imageVersion,
	}
	params := map[string]any{}
	for k, v := range values {
		params[k] = map[string]string{"value": v}
	}
	return json.MarshalIndent(map[string]any{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
		"contentVersion": "1.0.0.0",
		"parameters":     params,
	}, "", "  ")
}

// server serves the pairs' scripts and payloads on 127.0.0.1, as the
// scriptUri and sourceUri of goldsmith's template.
type server struct {
	URL string
	srv *http.Server
	err chan error
}

func serve(dir string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("serve the work: %w", err)
	}
	s := &server{
		URL: "http://" + ln.Addr().String(),
		srv: &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second},
		err: make(chan error, 1),
	}
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.err; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
