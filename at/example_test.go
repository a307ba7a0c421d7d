package at_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gatewayd/gatewayd/at"
)

// fakeModule stands in for the EC600 at the far end of a pipe: it reads one
// command and answers with reply.
func fakeModule(port net.Conn, command, reply string) {
	buf := make([]byte, 256)
	n, _ := port.Read(buf)
	if string(buf[:n]) == command {
		_, _ = port.Write([]byte(reply))
	}
}

func Example() {
	host, module := net.Pipe()
	go func() {
		// Echo on, a multi-line reply, then an MQTT link loss.
		fakeModule(module, "ATI\r", "ATI\r\r\nQuectel\r\nEC600N\r\nRevision: EC600NCNLCR03A01M08\r\n\r\nOK\r\n")
		_, _ = module.Write([]byte("\r\n+QMTSTAT: 0,1\r\n"))
	}()

	conn := at.New(host, at.Options{URCs: []at.URCSpec{{Prefix: "+QMTSTAT:"}}})
	defer conn.Close()
	urcs := conn.Subscribe()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := conn.Run(ctx, "ATI")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range resp.Lines {
		fmt.Println(l.Text)
	}
	fmt.Println("URC:", (<-urcs.C()).Text)
	// Output:
	// Quectel
	// EC600N
	// Revision: EC600NCNLCR03A01M08
	// URC: +QMTSTAT: 0,1
}

func ExampleCMEError() {
	host, module := net.Pipe()
	go fakeModule(module, "AT+CIMI\r", "\r\n+CME ERROR: 10\r\n")
	conn := at.New(host, at.Options{})
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := conn.Run(ctx, "AT+CIMI")
	var cme *at.CMEError
	if errors.As(err, &cme) {
		fmt.Println(cme.Code, cme.Text)
		fmt.Println(err)
	}
	// Output:
	// 10 SIM not inserted
	// at: AT+CIMI: +CME ERROR: 10 (SIM not inserted)
}
