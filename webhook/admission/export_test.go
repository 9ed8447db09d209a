package admission

// EncodePatch is encodePatch, for the external tests.
var EncodePatch = encodePatch
