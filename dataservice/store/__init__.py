"""Data access, one module per resource: typed functions over the named queries in sql/.

They take the connection first and never commit; they turn a missing row into NotFound and a
unique violation into Conflict. They import nothing from Flask.
"""
