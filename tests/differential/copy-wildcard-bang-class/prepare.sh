# a file whose name starts with '!' (awkward to commit)
echo bang > '!x.cfg'
