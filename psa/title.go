package psa

// Title returns the product name of the system for people: "Autotask",
// "ConnectWise PSA" or "Kaseya BMS"; an unknown system's own string.
func (s System) Title() string {
	switch s {
	case SystemAutotask:
		return "Autotask"
	case SystemConnectWise:
		return "ConnectWise PSA"
	case SystemKaseyaBMS:
		return "Kaseya BMS"
	}
	return string(s)
}
