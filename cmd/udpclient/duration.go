package main

import (
	"errors"
	"strconv"
	"time"
)

// durationFlag is a time.Duration flag whose error says what is wrong with
// a number given without a unit ("-timeout 100"), the usual slip.
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return errors.New("add a unit, e.g. " + s + "ms")
		}
		return errors.New("not a duration, e.g. 1s or 250ms")
	}
	*d = durationFlag(v)
	return nil
}
