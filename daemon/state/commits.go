package state

// Commits returns how many write transactions this DB has committed since
// it was opened, counting a group commit once however many callers it
// served. Callers use it to see what their writes cost the disk (the usage
// engine's tests check that a pass's statuses share one commit).
func (db *DB) Commits() int64 { return db.commits.Load() }
