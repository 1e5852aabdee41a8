"""Sign-up, login, refresh-token rotation, logout and the client-credentials grant."""
