-- A MariaDB catalog for scripts/bench-catalog: @dbs databases of @tables
-- tables each, @accounts accounts and @roles roles, names prefixed @prefix.
-- Every account holds: one database-level grant, 50 table-level grants (one
-- in five WITH GRANT OPTION), SELECT on two columns of 10 tables, EXECUTE on
-- a procedure, and a role. Each database has a view every 20 tables (SQL
-- SECURITY DEFINER, defined by an admin account), a trigger every 100
-- tables, 5 procedures and an event.
--   mariadb -e "SET @dbs=20, @tables=500, @accounts=100, @roles=10, @prefix='gwbm'; SOURCE tests/bench/mariadb.sql"
SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION';
CREATE DATABASE IF NOT EXISTS gwbench_gen;
DELIMITER //
CREATE OR REPLACE PROCEDURE gwbench_gen.run(stmt TEXT)
BEGIN
  SET @gwbench_stmt = stmt;
  PREPARE s FROM @gwbench_stmt;
  EXECUTE s;
  DEALLOCATE PREPARE s;
END //
CREATE OR REPLACE PROCEDURE gwbench_gen.generate(dbs INT, tables_per_db INT, accounts INT, roles INT, prefix VARCHAR(32))
BEGIN
  DECLARE d INT DEFAULT 0;
  DECLARE t INT;
  DECLARE a INT DEFAULT 0;
  DECLARE i INT;
  DECLARE db VARCHAR(64);
  DECLARE admin VARCHAR(200) DEFAULT CONCAT("'", prefix, "_admin'@'%'");
  CALL gwbench_gen.run(CONCAT('CREATE USER IF NOT EXISTS ', admin, ' IDENTIFIED BY ''bench-admin'''));
  CALL gwbench_gen.run(CONCAT('GRANT ALL ON *.* TO ', admin, ' WITH GRANT OPTION'));
  WHILE d < dbs DO
    SET db = CONCAT('`', prefix, '_d', LPAD(d, 3, '0'), '`');
    CALL gwbench_gen.run(CONCAT('CREATE DATABASE IF NOT EXISTS ', db));
    SET t = 0;
    WHILE t < tables_per_db DO
      CALL gwbench_gen.run(CONCAT('CREATE TABLE IF NOT EXISTS ', db, '.t', LPAD(t, 4, '0'),
        ' (id INT PRIMARY KEY, a INT, b VARCHAR(40)) ENGINE=InnoDB'));
      IF t % 20 = 0 THEN
        CALL gwbench_gen.run(CONCAT('CREATE OR REPLACE DEFINER = ', admin, ' SQL SECURITY DEFINER VIEW ', db,
          '.v', LPAD(t, 4, '0'), ' AS SELECT id, a FROM ', db, '.t', LPAD(t, 4, '0')));
      END IF;
      IF t % 100 = 0 THEN
        CALL gwbench_gen.run(CONCAT('CREATE OR REPLACE DEFINER = ', admin, ' TRIGGER ', db, '.tr', LPAD(t, 4, '0'),
          ' BEFORE INSERT ON ', db, '.t', LPAD(t, 4, '0'), ' FOR EACH ROW SET NEW.a = 1'));
      END IF;
      SET t = t + 1;
    END WHILE;
    SET i = 0;
    WHILE i < 5 DO
      CALL gwbench_gen.run(CONCAT('CREATE OR REPLACE DEFINER = ', admin, ' PROCEDURE ', db, '.p', i,
        '() SQL SECURITY DEFINER SELECT 1'));
      SET i = i + 1;
    END WHILE;
    CALL gwbench_gen.run(CONCAT('CREATE OR REPLACE DEFINER = ', admin, ' EVENT ', db,
      '.ev ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1'));
    SET d = d + 1;
  END WHILE;
  SET i = 0;
  WHILE i < roles DO
    CALL gwbench_gen.run(CONCAT('CREATE ROLE IF NOT EXISTS ', prefix, '_role', i));
    CALL gwbench_gen.run(CONCAT('GRANT SELECT ON `', prefix, '\\_d', LPAD(i % dbs, 3, '0'), '`.* TO ', prefix, '_role', i));
    SET i = i + 1;
  END WHILE;
  WHILE a < accounts DO
    SET @acct = CONCAT("'", prefix, '_u', a, "'@'10.0.%'");
    CALL gwbench_gen.run(CONCAT('CREATE USER IF NOT EXISTS ', @acct, ' IDENTIFIED BY ''bench-', a, ''''));
    CALL gwbench_gen.run(CONCAT('GRANT SELECT, INSERT ON `', prefix, '\\_d', LPAD(a % dbs, 3, '0'), '`.* TO ', @acct));
    SET i = 0;
    WHILE i < 50 DO
      SET db = CONCAT('`', prefix, '_d', LPAD((a + i) % dbs, 3, '0'), '`');
      CALL gwbench_gen.run(CONCAT('GRANT SELECT, UPDATE ON ', db, '.t', LPAD((a * 7 + i * 13) % tables_per_db, 4, '0'),
        ' TO ', @acct, IF(i % 5 = 0, ' WITH GRANT OPTION', '')));
      IF i < 10 THEN
        CALL gwbench_gen.run(CONCAT('GRANT SELECT (id, b) ON ', db, '.t', LPAD((a * 11 + i * 17) % tables_per_db, 4, '0'),
          ' TO ', @acct));
      END IF;
      SET i = i + 1;
    END WHILE;
    CALL gwbench_gen.run(CONCAT('GRANT EXECUTE ON PROCEDURE `', prefix, '_d', LPAD(a % dbs, 3, '0'), '`.p', a % 5,
      ' TO ', @acct));
    IF roles > 0 THEN
      CALL gwbench_gen.run(CONCAT('GRANT ', prefix, '_role', a % roles, ' TO ', @acct));
    END IF;
    SET a = a + 1;
  END WHILE;
END //
DELIMITER ;
CALL gwbench_gen.generate(@dbs, @tables, @accounts, @roles, @prefix);
DROP DATABASE gwbench_gen;
