"""The window's panels: each draws one thing from LiveData (and the app's state) into its rectangle."""
