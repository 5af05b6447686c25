package docker

// MapError exposes mapError to the tests, which feed it errors of the raw
// client.
var MapError = mapError
