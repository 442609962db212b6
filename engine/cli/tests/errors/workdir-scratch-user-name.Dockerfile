FROM scratch
# a name, and nothing in the stage to look it up in
USER app
WORKDIR /srv
