package dashboard

import "errors"

var (
	// errNoAnswer is the answer to a calculation the proxy never answered.
	errNoAnswer = errors.New("dashboard: no answer from the proxy")
	// errHost refuses a request whose Host is not one the dashboard
	// answers to: what a DNS rebinding attack sends.
	errHost = errors.New("dashboard: not a name this proxy answers to")
	// errCrossOrigin refuses a request another web site made a browser
	// send.
	errCrossOrigin = errors.New("dashboard: a cross-origin request")
)
