package sync

// OpenStore lets tests wrap the stores sync opens.
var OpenStore = &openStore
