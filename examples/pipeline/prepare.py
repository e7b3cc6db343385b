rows = 100

with open("data.csv", "w") as f:
    f.write("x,y\n")
    for i in range(rows):
        f.write(f"{i},{2 * i + 1}\n")
print(f"wrote {rows} rows to data.csv")
