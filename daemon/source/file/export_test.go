package file

// SetReadHook makes s call hook after the first bytes of each read of its
// file, where a test changes the file as a writer would.
func SetReadHook(s *Source, hook func()) { s.readHook = hook }
