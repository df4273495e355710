"""The recorder: the headless loop poll -> attribute -> charge -> store, its Tick and chart steps."""
