package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// selfSignedCert returns the server certificate and key for
// --tls-self-signed, in dir: goldsmith's own certificate authority (ca.crt,
// what a client trusts: REQUESTS_CA_BUNDLE, or the system store) and a
// server certificate it signed for 127.0.0.1, ::1, localhost, this host's
// name and names. A CA rather than one self-signed certificate, so that a
// new name or a renewal needs no new trust: the server certificate is made
// again whenever it lacks a name or has under 30 days left, the CA stays.
func selfSignedCert(dir string, names []string, out io.Writer) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("TLS directory: %w", err)
	}
	caCert, caKey, err := loadOrMakeCA(dir)
	if err != nil {
		return "", "", err
	}
	host, _ := os.Hostname()
	dnsNames, ips := []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, n := range append([]string{host}, names...) {
		n = strings.TrimSpace(n)
		switch ip := net.ParseIP(n); {
		case n == "":
		case ip != nil:
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		case !slices.Contains(dnsNames, strings.ToLower(n)):
			dnsNames = append(dnsNames, strings.ToLower(n))
		}
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if !serverCertFits(certFile, keyFile, caCert, dnsNames, ips) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serialNumber(),
			Subject:      pkix.Name{CommonName: "goldsmith"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().AddDate(1, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     dnsNames,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return "", "", fmt.Errorf("make the server certificate: %w", err)
		}
		if err := writeKeyPair(certFile, keyFile, der, key); err != nil {
			return "", "", err
		}
	}
	caFile := filepath.Join(dir, "ca.crt")
	sum := sha256.Sum256(caCert.Raw)
	fmt.Fprintf(out, "TLS: certificate for %s signed by goldsmith's CA %s (SHA-256 %s); trust it with\n\n    export REQUESTS_CA_BUNDLE=%s\n\n",
		strings.Join(append(dnsNames, ipStrings(ips)...), ", "), caFile, hex.EncodeToString(sum[:]), caFile)
	return certFile, keyFile, nil
}

func loadOrMakeCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if pair, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if cert, cerr := x509.ParseCertificate(pair.Certificate[0]); cerr == nil && ok && cert.IsCA {
			return cert, key, nil
		}
		return nil, nil, fmt.Errorf("%s is not a CA certificate with an ECDSA key: remove %s to make a new CA", certFile, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read goldsmith's CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "goldsmith CA (" + host + ")"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make goldsmith's CA: %w", err)
	}
	if err := writeKeyPair(certFile, keyFile, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// serverCertFits tells whether the server certificate in certFile is
// signed by ca, covers every name and has at least 30 days left.
func serverCertFits(certFile, keyFile string, ca *x509.Certificate, dnsNames []string, ips []net.IP) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || cert.CheckSignatureFrom(ca) != nil || time.Until(cert.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, n := range dnsNames {
		if !slices.Contains(cert.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func writeKeyPair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyFile, err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", certFile, err)
	}
	return nil
}

func serialNumber() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func ipStrings(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}
