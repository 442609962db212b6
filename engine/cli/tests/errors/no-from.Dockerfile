# only a comment and a RUN
RUN echo hi
