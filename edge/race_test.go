//go:build race

package edge

// raceEnabled: the race detector keeps shadow memory that RSS includes and
// never returns, so RSS growth is judged only without it.
const raceEnabled = true
