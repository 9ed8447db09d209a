package backup

// OpenStore lets tests wrap the store a run opens.
var OpenStore = &openStore
