"""A music library, organised: ``genre catalog`` classifies a collection into a SQLite catalog, writes
genre tags into the files safely, puts them back, and makes playlists.

The flow: ``walk`` lists the audio files under the folders given (each real file once, loops and
unreadable folders reported); ``scan`` brings them into the catalog (``store``), classifying what is new
or changed with the champion (``classify``) and committing each file as it is answered; ``tagging``
writes the catalog's confident genres into the files with ``tags`` (atomic, undoable) and restores them;
``playlists`` and ``summary`` read the catalog.
"""
