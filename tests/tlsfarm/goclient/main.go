// A Go crypto/tls client with Go's own habits: it keeps the session a server gives it in a
// ClientSessionCache and offers it on the next connection; under TLS 1.2 it resumes by
// session ticket only (Go's client sends no session ID of its own). Connects `-n` times to
// -addr, one request each, and prints one mark per connection: "r" resumed, "." full.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	addr := flag.String("addr", "", "HOST:PORT")
	n := flag.Int("n", 20, "connections")
	version := flag.String("version", "1.2", "1.2 or 1.3")
	flag.Parse()
	v := uint16(tls.VersionTLS12)
	if *version == "1.3" {
		v = tls.VersionTLS13
	}
	config := &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         v,
		MaxVersion:         v,
		ClientSessionCache: tls.NewLRUClientSessionCache(1),
	}
	marks := ""
	for i := 0; i < *n; i++ {
		conn, err := tls.Dial("tcp", *addr, config)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: farm\r\n\r\n")
		// The reply, and with it the TLS 1.3 tickets that follow the handshake.
		if _, err := io.ReadAll(conn); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if conn.ConnectionState().DidResume {
			marks += "r"
		} else {
			marks += "."
		}
		conn.Close()
	}
	fmt.Println(marks)
}
