"""Small widgets of the live app: each shows one part of a :class:`gputab.live.frame.Frame`."""
