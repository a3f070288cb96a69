package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trustingClient is an HTTP client that trusts only the CA in caFile.
func trustingClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in " + caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// TestSelfSignedCertificate: the server certificate is signed by goldsmith's
// CA for loopback, localhost and the configured names; a new name makes a
// new server certificate under the same CA, so trust in ca.crt carries over.
func TestSelfSignedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := selfSignedCert(dir, []string{"goldsmith.test", "10.1.2.3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	client, err := trustingClient(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host   string
		wantOK bool
	}{
		{"127.0.0.1", true},
		{"localhost", true},
		{"goldsmith.test", true},
		{"10.1.2.3", true},
		{"other.test", false},
	} {
		t.Run(tt.host, func(t *testing.T) {
			// Dial 127.0.0.1 whatever the name: the certificate is what is tested.
			tr := client.Transport.(*http.Transport).Clone()
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
			}
			resp, err := (&http.Client{Transport: tr}).Get("https://" + net.JoinHostPort(tt.host, port) + "/")
			if tt.wantOK != (err == nil) {
				t.Fatalf("GET via %s: %v, want ok=%v", tt.host, err, tt.wantOK)
			}
			if err == nil {
				resp.Body.Close()
			} else if !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("GET via %s failed, but not for its certificate: %v", tt.host, err)
			}
		})
	}

	// Again with the same names: nothing changes. With a new name: a new
	// server certificate, the same CA.
	before, _ := os.ReadFile(certFile)
	if _, _, err := selfSignedCert(dir, []string{"goldsmith.test", "10.1.2.3"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(certFile); string(again) != string(before) {
		t.Error("the server certificate was made again for the same names")
	}
	if _, _, err := selfSignedCert(dir, []string{"new.test"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(certFile)
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if string(after) == string(before) || string(caAfter) != string(caBefore) {
		t.Errorf("a new name: server certificate changed %v (want true), CA changed %v (want false)", string(after) != string(before), string(caAfter) != string(caBefore))
	}
}
