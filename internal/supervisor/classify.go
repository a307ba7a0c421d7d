package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/qmt"
)

// class is what a stage's error means for the session.
type class int

const (
	classRetry        class = iota // try again from classified.from, after a back-off
	classFatal                     // no retry can mend it: Run returns the error
	classPortGone                  // the AT port is gone: reopen it
	classUnresponsive              // the module does not answer: reset it
	classNotYet                    // a condition is not met yet: poll again after classified.poll
)

// classified is a stage error's class, with what the class needs.
type classified struct {
	class class
	from  stage         // classRetry: the stage to start again from
	poll  time.Duration // classNotYet: when to look again
	state string        // classNotYet: what the module said, in words
}

// classify is the one place that decides what a stage's error means: everything the
// supervisor does after a failure follows from it.
func classify(st stage, err error) classified {
	var perm *PermanentError
	var wait *notYetError
	switch {
	case errors.As(err, &perm):
		return classified{class: classFatal}
	case errors.Is(err, at.ErrPortGone), errors.Is(err, at.ErrClosed), errors.Is(err, qmt.ErrClientClosed):
		return classified{class: classPortGone}
	case errors.Is(err, at.ErrUnresponsive):
		return classified{class: classUnresponsive}
	case errors.As(err, &wait):
		return classified{class: classNotYet, poll: wait.poll, state: wait.state}
	case errors.Is(err, qmt.ErrModuleReset):
		return classified{class: classRetry, from: stageModule}
	case st == stageMQTT && errors.Is(err, qmt.ErrPDP):
		// The module says mobile data is down: check registration and reactivate it.
		return classified{class: classRetry, from: stageRegister}
	}
	return classified{class: classRetry, from: st}
}

// PermanentError is a fault that no retry mends, such as a configuration the module refuses.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// notYetError is a stage's "the condition I wait for does not hold yet" (the SIM is busy, the
// network is being searched): the machine polls the stage again after poll, up to the stage's
// limit.
type notYetError struct {
	state string // what the module says, e.g. "searching"
	poll  time.Duration
	err   error // the module's answer, when it was an error
}

func (e *notYetError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s (%v)", e.state, e.err)
	}
	return e.state
}

func (e *notYetError) Unwrap() error { return e.err }

// stepError names the step of a stage that failed, with a hint for the operator.
type stepError struct {
	step string
	hint string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// failedStep wraps err with the step of a stage that returned it; nil stays nil.
func failedStep(step string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: step, err: err}
}
