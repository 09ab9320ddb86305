package strata

// Show is show, for the package's external tests.
var Show = show
