"""What people are told: the wording of every SMS, email, call and shared alert, the lines of an
alert's timeline, and the screen of what a message to another agency may carry. Pure: no I/O,
the time passed in."""
