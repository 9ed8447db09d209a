package pg

// Classify is classify, for the black-box tests.
var Classify = classify
