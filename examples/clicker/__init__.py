"""The clicker example: each click adds one to a player's score; a leaderboard shows the top."""
