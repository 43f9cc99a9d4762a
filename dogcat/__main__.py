from dogcat.cli import main

main()
