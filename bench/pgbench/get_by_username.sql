-- A random seeded user's username, built as dataservice/seed.py builds it (keep in step).
\set i random(0, :users - 1)
\set f :i % 29 + 1
\set l (:i / 29) % 20 + 1
SELECT id, email, username, version, created_at, updated_at FROM users WHERE lower(username) = lower((ARRAY['ada', 'alan', 'anna', 'bob', 'carla', 'chen', 'dara', 'emil', 'fatima', 'grace', 'hugo', 'ines', 'jon', 'kemal', 'lena', 'mario', 'nadia', 'olga', 'pedro', 'quinn', 'rosa', 'sami', 'tara', 'uma', 'victor', 'wen', 'xavier', 'yara', 'zoe'])[:f] || '_' || (ARRAY['adams', 'brown', 'costa', 'dubois', 'evans', 'fischer', 'garcia', 'hansen', 'ivanov', 'jensen', 'kim', 'lopez', 'martin', 'nguyen', 'okafor', 'petrov', 'rossi', 'silva', 'tanaka', 'weber'])[:l] || :i);
