provider "psa" {}
