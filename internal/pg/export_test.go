package pg

// Classify is classify, for the black-box tests.
var Classify = classify

// ReadPace is readPace, for the black-box tests.
const ReadPace = readPace
