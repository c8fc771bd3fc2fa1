"""The clicker example: each click adds one to a player's score; a leaderboard shows the top.

Run it with `python -m examples.clicker` and open the address it prints; load-test it with
`python -m examples.clicker.bot --launch`.
"""
