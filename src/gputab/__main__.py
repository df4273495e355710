from gputab.cli import main

main()
