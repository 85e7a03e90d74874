//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package email

import "net"

// idleClean cannot look at the socket here: a pooled connection the
// server closed shows at MAIL FROM instead (failure.stale), except with
// BDAT, where the email then fails as ambiguous and is retried on the
// schedule. Use pipelining=commands on such a system.
func idleClean(net.Conn) bool { return true }
