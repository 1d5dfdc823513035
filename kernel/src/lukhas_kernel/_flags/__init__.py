"""Run-time flags: parsing (`parsing`), storage (`store`), applying and
following other host processes (`runtime`)."""
