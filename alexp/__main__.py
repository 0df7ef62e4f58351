from alexp.cli import main

main()
