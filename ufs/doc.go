// Package ufs reads and writes the EC600's user file system (UFS) over the AT port: AT+QFLST to
// list, AT+QFUPL to upload (the module answers CONNECT, then takes exactly the announced number
// of raw bytes), AT+QFDEL to delete and AT+QFLDS for the free space. TLS certificates and keys
// live there for AT+QSSLCFG (reference section 5.2).
//
// The reference marks the file-system error numbers UNCONFIRMED, so errors are classified only
// as "a file-system error" (+CME ERROR 400-499, see IsFileError), and the upload checksum's
// algorithm is unconfirmed too: an upload is checked by the size the module reports.
package ufs
