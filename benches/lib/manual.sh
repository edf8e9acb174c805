# benches/lib/manual.sh: the operations manual's procedures, shared by the benchmarks that race
# rb against them (benches/dr_drill.sh, benches/site-loss.sh). Sourced, not run.

# write_manual_restore_script: the manual's /scripts/database-restore.sh, verbatim but for the
# names and paths, written to $WORK/database-restore.sh. Uses $PG (the database container),
# $BE, $FE (the application containers) and $WORK (where its pre-recovery dump goes).
write_manual_restore_script() {
cat > "$WORK/database-restore.sh" <<SCRIPT
#!/bin/bash
BACKUP_FILE="\$1"
DB_NAME="codexos_db"
DB_USER="codexos"
CONTAINER_NAME="$PG"
if [ -z "\$BACKUP_FILE" ]; then echo "Usage: \$0 <backup_file_path>"; exit 1; fi
if [ ! -f "\$BACKUP_FILE" ]; then echo "Backup file not found: \$BACKUP_FILE"; exit 1; fi
echo "Stopping application services..."
docker stop $BE $FE
sleep 10
if docker ps | grep -q "$BE\|$FE"; then echo "Failed to stop services. Aborting recovery."; exit 1; fi
echo "Creating backup of current database..."
docker exec \$CONTAINER_NAME pg_dump -U \$DB_USER -d \$DB_NAME --format=custom --file="/tmp/pre_recovery_backup.dump"
docker cp \$CONTAINER_NAME:/tmp/pre_recovery_backup.dump $WORK/pre_recovery_\$(date +%Y%m%d_%H%M%S).dump
echo "Dropping and recreating database..."
docker exec \$CONTAINER_NAME dropdb -U \$DB_USER --if-exists \$DB_NAME
docker exec \$CONTAINER_NAME createdb -U \$DB_USER \$DB_NAME
echo "Restoring database from backup..."
docker cp "\$BACKUP_FILE" \$CONTAINER_NAME:/tmp/recovery_backup.dump
if [[ "\$BACKUP_FILE" == *.gz ]]; then docker exec \$CONTAINER_NAME gunzip /tmp/recovery_backup.dump.gz; fi
docker exec \$CONTAINER_NAME pg_restore -U \$DB_USER -d \$DB_NAME --verbose --clean --if-exists /tmp/recovery_backup.dump
echo "Verifying database restoration..."
docker exec \$CONTAINER_NAME psql -U \$DB_USER -d \$DB_NAME -c "
SELECT COUNT(*) as user_count FROM users;
SELECT COUNT(*) as agent_count FROM agents;
SELECT COUNT(*) as execution_count FROM agent_execution_history;"
docker exec \$CONTAINER_NAME rm -f /tmp/recovery_backup.dump
echo "Restarting application services..."
docker start $BE $FE
sleep 30
if ! docker ps | grep -q "$BE"; then echo "Warning: Backend service failed to start"; fi
if ! docker ps | grep -q "$FE"; then echo "Warning: Frontend service failed to start"; fi
echo "Database recovery completed."
SCRIPT
}
