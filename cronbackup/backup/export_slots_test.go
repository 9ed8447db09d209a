package backup

import "time"

// SetSlotPoll makes waiting backups retry the slots every d; it returns the undo.
func SetSlotPoll(d time.Duration) func() {
	old := slotPoll
	slotPoll = d
	return func() { slotPoll = old }
}
