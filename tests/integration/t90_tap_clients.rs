//! External TAP clients: pyvo, astroquery, STILTS taplint; ADQL slt over TAP.
