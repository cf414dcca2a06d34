package tickets

import "errors"

// ErrNotLeader is matched by the error of a Store write refused because
// this psa-syncd is not, or is no longer, the active instance of a shared
// state database (another one holds the leadership lock). A store that is
// shared by several processes refuses the writes of every instance but the
// active one: the engine records a create, close or note (state.DB: any
// ticket record) before it sends it, so an instance that lost the lock
// does not send it.
var ErrNotLeader = errors.New("tickets: this psa-syncd is not the active instance, so it sends no ticket writes")
